"""Context models (share_net, ffnn_plus): their features, recipe, module and saving."""
