"""`raviso submit`: run any raviso command on a Ray cluster as a Ray Job. Imports only core."""
