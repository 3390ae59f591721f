"""The ``ppnets`` command (:mod:`ppnets.cli.main`), one module per subcommand."""
