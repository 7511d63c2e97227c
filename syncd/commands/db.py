"""``syncd db upgrade``: apply the SQL migrations."""


def add_commands(sub) -> None:
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply the SQL migrations").set_defaults(handler=upgrade, runtime=False)


def upgrade(args) -> int:
    from syncd.runtime import load_config
    from syncd.store.migrate import upgrade

    settings, _ = load_config(args.config)
    upgrade(settings.database_url)
    print("database schema up to date")
    return 0
