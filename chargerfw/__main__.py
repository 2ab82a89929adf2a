from chargerfw.cli import main

main()
