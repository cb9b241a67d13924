from experiments.uci import main

main()
