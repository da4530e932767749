from services.raft.shell import main

main()
