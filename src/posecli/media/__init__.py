"""Media: sources, image files and their headers, video, cameras and URLs."""
