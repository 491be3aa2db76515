#pragma once
// Placeholder: the Bedrock client lands with its issue.
