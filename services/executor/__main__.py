from services.executor.shell import main

main()
