from fastsync.cli import main

main()
