"""``python -m avatarflow``."""

from avatarflow.entry import main

raise SystemExit(main())
