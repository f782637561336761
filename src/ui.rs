//! Terminal output shared by subcommands: colour decisions, progress, number formatting.
