from services.scheduler.shell import main

main()
