"""Statement execution: the router, plans, commands, training and the model lifecycle."""
