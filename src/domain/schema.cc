#include "domain/schema.h"

#include <iterator>

namespace quarry::domain {

std::vector<store::Migration> AllMigrations() {
  std::vector<store::Migration> all = store::StoreMigrations();
  for (auto part : {AccountMigrations(), ProviderMigrations(), AppMigrations()}) {
    all.insert(all.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return all;
}

}  // namespace quarry::domain
