from hub.frontoffice.web.app import main

main()
