"""Access to the Halo Waypoint API (live or emulated) through spnkr."""
