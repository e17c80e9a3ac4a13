"""Statistics over CV results: paired tests, floors, the leaderboard."""
