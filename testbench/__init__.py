"""cocotb test benches: driver, monitor and scoreboard, with the emulator's codes as the model."""
