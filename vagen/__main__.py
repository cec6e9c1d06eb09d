from vagen.cli import main

raise SystemExit(main())
