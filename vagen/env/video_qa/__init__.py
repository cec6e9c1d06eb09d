"""env/video_qa."""
