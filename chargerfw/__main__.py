from chargerfw.cli import console

console()
