def main() -> None:
    print("livedub")
