"""Embedding evaluation: k-NN, linear probe, clustering metrics and the leaderboard."""
