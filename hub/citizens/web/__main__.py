from hub.citizens.web.app import main

main()
