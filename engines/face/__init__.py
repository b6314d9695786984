"""Face tracking: the `FaceTracker` interface and the mediapipe backend."""
