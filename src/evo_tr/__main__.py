from evo_tr.cli import main

main()
