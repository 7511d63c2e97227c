"""``syncd check-config``: validate the settings and the mappings, print every problem."""

import sys


def add_commands(sub) -> None:
    sub.add_parser("check-config", help="validate the settings and the mappings, print every problem").set_defaults(
        handler=check_config, runtime=False)


def check_config(args) -> int:
    from syncd import operator
    from syncd.runtime import load_config

    settings, mappings = load_config(args.config)
    roles = sum(len(a.roles) for a in mappings.applications)
    print(f"configuration valid: {len(mappings.applications)} applications, {roles} roles, "
          f"{len(mappings.organisations)} organisations")
    print(operator.UPGRADE_NOTE)
    if (warning := operator.decider_warning(settings)) is not None:
        print(warning, file=sys.stderr)
    return 0
