from pfill.cli import main

main()
