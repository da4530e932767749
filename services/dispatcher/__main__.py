from services.dispatcher.shell import main

main()
