from chaosvol.cli import main

main()
