"""Developer tooling (embedded servers, process supervision); not shipped in the wheel or the image."""
