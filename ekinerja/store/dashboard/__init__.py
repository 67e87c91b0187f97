"""The store's dashboard: pages for office heads and the personnel section (Bahasa Indonesia first)."""
