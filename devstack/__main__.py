"""`make run`: bring up the local stack and print where to find it."""

from devstack.launcher import main

raise SystemExit(main())
