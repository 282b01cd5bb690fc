import sys

from kafka_local.broker import main

raise SystemExit(main(sys.argv[1:]))
