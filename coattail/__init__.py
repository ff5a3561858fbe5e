"""coattail package."""
