"""The market as it trades: its rules as dated data (the tick grid and its mid-point rule)."""
