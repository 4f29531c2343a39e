from aoeconform.cli import main

raise SystemExit(main())
