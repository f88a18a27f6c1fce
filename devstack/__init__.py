"""Local stack: runs template.yaml's resources and functions on moto and a WeChat emulator, without Docker."""
