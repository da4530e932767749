from services.gossip.shell import main

main()
