from bench.cli import main

# guarded: a spawned training worker (train.parallel_runs) imports this module as __mp_main__
if __name__ == '__main__':
    raise SystemExit(main())
