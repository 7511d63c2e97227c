"""``syncd web``: serve the decision links and the API with uvicorn (``syncd.web.app``)."""


def add_commands(sub) -> None:
    web = sub.add_parser("web", help="serve the decision links and the portal's API (HTTP)")
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    web.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    web.add_argument("--forwarded-allow-ips", default="127.0.0.1",
                     help="reverse proxies whose X-Forwarded-* headers are trusted (default: 127.0.0.1)")
    web.set_defaults(handler=serve, runtime=False)      # the app owns its runtime and closes it at shutdown


def serve(args) -> int:
    import uvicorn

    from syncd.runtime import open_runtime
    from syncd.web.app import create_app

    rt = open_runtime(args.config)
    app = create_app(rt, clients=None, own_runtime=True)   # None: the clients come from the settings
    import structlog
    structlog.get_logger(__name__).info("web_listening", host=args.host, port=args.port)
    uvicorn.run(app, host=args.host, port=args.port, proxy_headers=True,
                forwarded_allow_ips=args.forwarded_allow_ips, access_log=False, server_header=False,
                log_config=None, timeout_graceful_shutdown=10)
    return 0
