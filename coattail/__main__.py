from coattail.cli import main

main()
