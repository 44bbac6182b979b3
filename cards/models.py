"""Model cards arrive with the model-cards issue; the app is installed so migrations line up."""
