"""One module per ``kneeoa`` subcommand, imported only when that subcommand runs."""
