"""Sample media files served by the WeChat emulator, and the script that generates them."""
