"""``sync``: many images planned together, then copied concurrently on one engine Job.

inputs.py         source kinds (docker, dir) and destination kinds, skopeo's naming, sync_images()
config.py         input files: skopeo's YAML, image lists, image-syncer configs
storage_kinds.py  registry-storage as a sync source and destination (daemon_kinds.py, cstorage_kinds.py:
                  docker-daemon and containers-storage likewise)
plan.py           Planner: manifests read and destinations probed before any blob moves
limits.py         per-host concurrency limits (fixed or adaptive)
run.py            run_sync(): plan, then copy what is not up to date

May import: everything below it (vocabulary, core, registry, store, transports, engine). Not cli.
"""
