"""`python -m pgqueue_enricher` is the same as the `pgqueue-enricher` command."""

from pgqueue_enricher.cli.main import main

raise SystemExit(main())
