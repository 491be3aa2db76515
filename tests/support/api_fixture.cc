// Placeholder: implemented in the platform-core issue.
