// The demo's IT-support tickets. The mix is deliberate: every category,
// priority and sentiment of the triage template occurs; a few tickets repeat
// another's title and description word for word (the same problem reported
// by a second person), so the call cache shows hits; and a few are too vague
// to classify with confidence, so they go to human review.
#include "cli/demo_tickets.h"

namespace quarry::cli {

const std::vector<DemoTicket>& DemoTickets() {
  static const std::vector<DemoTicket>* const kTickets = new std::vector<DemoTicket>{
      // Network
      {"VPN down for the whole sales floor",
       "VPN down for the whole sales floor, nobody can work. The client says the gateway is "
       "unreachable.",
       "maria.lopez@example.com"},
      {"Wi-Fi drops in meeting room 4B",
       "The wifi in meeting room 4B drops every few minutes during calls. It has been like this "
       "since Monday.",
       "tom.becker@example.com"},
      {"Cannot reach the intranet from home",
       "Since this morning I cannot open the intranet when connected to the VPN from home. Other "
       "sites load fine.",
       "aisha.khan@example.com"},
      {"VPN keeps disconnecting",
       "My VPN disconnects every 20 minutes and I have to sign in again. Really frustrating when "
       "I'm on customer "
       "calls.",
       "lukas.weber@example.com"},
      {"Internet very slow on the third floor",
       "Internet is really slow on the third floor today; uploads to SharePoint take ages.",
       "emma.johansson@example.com"},
      {"Office network outage in Lyon",
       "The Lyon office network is down for everyone since 9:00: no internet, no printers, no "
       "phones.",
       "claire.martin@example.com"},
      {"Guest Wi-Fi password",
       "Quick question: what is the guest wifi password for visitors this week? We have a client "
       "visiting "
       "tomorrow.",
       "noah.smith@example.com"},
      {"VPN keeps disconnecting",
       "My VPN disconnects every 20 minutes and I have to sign in again. Really frustrating when "
       "I'm on customer "
       "calls.",
       "sofia.rossi@example.com"},
      {"Great job on the VPN upgrade",
       "The new VPN client is fantastic, connections are much faster now. Thanks, much "
       "appreciated!",
       "daniel.kim@example.com"},

      // Hardware
      {"Laptop screen cracked",
       "I dropped my laptop and the screen is cracked. I'm using an external monitor for now.",
       "olivia.brown@example.com"},
      {"Printer on floor 2 jams constantly",
       "The printer next to the kitchen on floor 2 jams on every second page. Annoying, but we can "
       "use the one on "
       "floor 3.",
       "james.wilson@example.com"},
      {"Second monitor for my desk",
       "I would like a second monitor for my desk when one is available, no rush.",
       "mia.schneider@example.com"},
      {"Laptop battery drains fast",
       "My laptop battery goes from full to empty in about an hour, even with the screen dimmed. "
       "Thanks!",
       "ethan.davis@example.com"},
      {"Keys came off my keyboard",
       "Two keys on my keyboard came off (E and R), which makes typing slow. Thanks in advance!",
       "lena.fischer@example.com"},
      {"Docking station does not detect monitors",
       "When I plug into the docking station neither monitor wakes up. Unplugging and replugging "
       "does not help, "
       "and this is the second dock that fails. Frustrating.",
       "oliver.taylor@example.com"},
      {"Headset microphone not working in calls",
       "People can't hear me on calls with my headset; the microphone is not working, although it "
       "works on my "
       "phone.",
       "hannah.muller@example.com"},
      {"Coffee spilled on laptop",
       "I spilled coffee on my laptop and it won't turn on. I have a client presentation at 2pm, "
       "please help "
       "urgently!",
       "lucas.moreau@example.com"},
      {"Boardroom projector shows no signal",
       "The boardroom projector shows 'no signal' with every laptop we try. The board meets there "
       "tomorrow "
       "morning.",
       "grace.lee@example.com"},
      {"Printer on floor 3 stopped printing",
       "The printer on floor 3 stopped printing for the five of us in finance; jobs just sit in "
       "the queue.",
       "ben.carter@example.com"},
      {"Laptop became very slow",
       "My laptop has become really slow since last week, everything takes minutes to open.",
       "chloe.dubois@example.com"},

      // Software
      {"Excel crashes when opening the budget workbook",
       "Excel crashes every time I open the Q3 budget workbook. Other files open fine.",
       "henry.walker@example.com"},
      {"Teams keeps freezing",
       "Teams freezes during video calls and I have to kill it. This is the third time today, "
       "really annoying.",
       "isabella.garcia@example.com"},
      {"Visio for process diagrams",
       "I would like Microsoft Visio installed on my machine for process diagrams next month. "
       "Thanks!",
       "jack.thompson@example.com"},
      {"Acrobat stopped letting me edit PDFs",
       "Acrobat says my licence has expired and I can't edit PDFs anymore. Really annoying.",
       "ella.nielsen@example.com"},
      {"Salesforce shows an error on every opportunity",
       "When I open any opportunity in Salesforce I get 'An unexpected error has occurred'. It "
       "started after this "
       "morning's update.",
       "liam.oconnor@example.com"},
      {"Upgrade to Windows 11",
       "Whenever you have time, could my PC be upgraded to Windows 11? No rush.",
       "zoe.anderson@example.com"},
      {"Zoom plugin missing",
       "The Zoom plugin disappeared from the toolbar after the upgrade, so I can't add meeting "
       "links anymore.",
       "samuel.jones@example.com"},
      {"Production order database failing after patch",
       "After last night's patch the production order database throws timeout errors and all users "
       "in finance "
       "are blocked.",
       "victoria.hall@example.com"},
      {"Excel crashes when opening the budget workbook",
       "Excel crashes every time I open the Q3 budget workbook. Other files open fine.",
       "matteo.bianchi@example.com"},

      // Access
      {"Locked out of my account",
       "I'm locked out after too many password attempts and cannot work. Please unlock it ASAP.",
       "amelia.clark@example.com"},
      {"Password reset", "How do I reset my password? It expires tomorrow.",
       "leo.wright@example.com"},
      {"Access to the finance shared folder",
       "I joined the finance team this week and need access to the Finance shared folder. Thank "
       "you!",
       "nora.hansen@example.com"},
      {"MFA prompts not arriving",
       "The authenticator app no longer shows MFA prompts, so I can't log in to anything. My phone "
       "was replaced "
       "yesterday.",
       "oscar.evans@example.com"},
      {"Account for a new starter",
       "Please set up an account for our new starter Priya Shah, who joins Marketing on Monday. "
       "Thanks a lot!",
       "ruby.patel@example.com"},
      {"Sign-in from another country",
       "I got an alert about a sign-in to my account from another country. I didn't do that; I "
       "think my account "
       "is compromised.",
       "felix.wagner@example.com"},
      {"Password reset", "How do I reset my password? It expires tomorrow.",
       "ava.robinson@example.com"},
      {"Admin rights for the lab scanner",
       "I need local admin rights and permission to set up the lab scanner on my workstation.",
       "elias.berg@example.com"},

      // Email
      {"How do I change my email signature?",
       "How do I change my email signature? I have a new job title.", "lily.cooper@example.com"},
      {"Shared mailbox missing from Outlook",
       "The support shared mailbox disappeared from my Outlook this morning.",
       "max.hoffmann@example.com"},
      {"Possible phishing email",
       "I received an email asking me to confirm my bank details via a link. It looks like "
       "phishing; I haven't "
       "clicked it.",
       "sophie.laurent@example.com"},
      {"Emails to a client bounce",
       "Every email I send to the contoso.com domain bounces back with a 550 error since "
       "yesterday, "
       "and the client is unhappy.",
       "william.scott@example.com"},
      {"Out of office from my phone",
       "Is it possible to set my Outlook out of office reply from my phone? I'm travelling next "
       "week.",
       "julia.novak@example.com"},
      {"Mailbox full, cannot send",
       "Outlook says my mailbox is full and I can't send emails again. I have a deadline today, "
       "this is urgent!",
       "adam.murphy@example.com"},
      {"Calendar invites an hour off",
       "Meeting invites from the US office show up an hour off in my calendar since the clocks "
       "changed.",
       "freya.jensen@example.com"},
      {"How do I change my email signature?",
       "How do I change my email signature? I have a new job title.", "arthur.green@example.com"},

      // Other, and requests too vague to classify with confidence.
      {"Computer acting weird",
       "My computer is acting weird since yesterday. Can someone take a look?",
       "emily.white@example.com"},
      {"Help", "Something is wrong and I don't know what. It just doesn't work.",
       "david.martinez@example.com"},
      {"Ergonomic chair", "Who do I ask about an ergonomic chair? Not sure this is for IT.",
       "laura.schmidt@example.com"},
      {"Thank you for the quick setup",
       "Just wanted to say thanks: the new laptop setup was excellent and the team was very "
       "helpful.",
       "kevin.brooks@example.com"},
      {"Files encrypted on the file server",
       "A pop-up on the file server says our files are encrypted and demands a ransom. It looks "
       "like ransomware, "
       "and several team drives are affected.",
       "paul.richter@example.com"},
  };
  return *kTickets;
}

}  // namespace quarry::cli
