"""Domain package shared by every function: WeChat protocol, tickets, media and notices."""
