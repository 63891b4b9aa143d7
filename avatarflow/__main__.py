"""``python -m avatarflow``."""

from avatarflow.cli import main

raise SystemExit(main())
