"""`python app.py`: the search UI on the bundled sample photos (also the Hugging Face Spaces entry point)."""

import sys

if __name__ == "__main__":
    from search_app.__main__ import main

    sys.exit(main())
