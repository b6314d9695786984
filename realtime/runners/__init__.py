"""The three ways a session is run: a file on the virtual clock (file.py), a camera or file live on the wall
clock (live.py), WebRTC peers (server.py)."""
