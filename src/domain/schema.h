#pragma once
// Every numbered migration of the product, from each module that owns tables
// (see store/migrations.h for the version ranges).

#include <vector>

#include "store/migrations.h"

namespace quarry::domain {

std::vector<store::Migration> AccountMigrations();   // 100-199 (accounts.cc owner)
std::vector<store::Migration> ProviderMigrations();  // 200-299 (providers, services, agents, chat)
std::vector<store::Migration> AppMigrations();       // 300-399 (apps, objects, records)

// Store + all of the above, for ApplyMigrations at start-up.
std::vector<store::Migration> AllMigrations();

}  // namespace quarry::domain
