provider "aws" {
  region = var.region

  # Every resource carries the same ownership tags, so cost reports and clean-up can find them.
  default_tags {
    tags = merge(var.tags, {
      Project     = "coattail-capital"
      Environment = var.environment
      ManagedBy   = "terraform"
      FeatureTier = var.feature_tier
    })
  }
}
