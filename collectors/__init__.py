"""What gathers data: scheduled sweeps over the inventory, the feedback sink, its parsers."""
